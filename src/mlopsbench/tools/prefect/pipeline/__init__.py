"""What a Prefect user writes: a flow per use case and the tasks and helpers they share."""
