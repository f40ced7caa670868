"""The DAG files and the helpers they import; .airflowignore keeps the helpers from being parsed
as DAG files when this folder is the DAGs folder."""
