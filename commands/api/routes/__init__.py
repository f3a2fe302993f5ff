"""One FastAPI router per resource of the command API (see DESIGN's public contract)."""
