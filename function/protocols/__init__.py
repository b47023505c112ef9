"""One module per wire format: each parses a request into images and renders predictions."""
