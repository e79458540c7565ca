"""Fakes of outside services for tests (Vast.ai's REST API in vast_api.py)."""
