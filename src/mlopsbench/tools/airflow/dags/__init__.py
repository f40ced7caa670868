"""Pipeline definition files only: the orchestrator executes every module it finds here."""
