"""What a Metaflow user writes: a flow per use case and the helpers they share."""
