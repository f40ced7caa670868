"""One folder (or module) per MLOps tool. Tools never import each other; the registry loads them."""
