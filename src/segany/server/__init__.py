"""The annotation server: a FastAPI app, its storage and the browser annotator it serves."""
