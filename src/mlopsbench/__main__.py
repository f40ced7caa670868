from mlopsbench.cli import app

app()
