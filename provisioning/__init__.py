"""Providers (where the GPU box comes from) and transports (how commands and files reach it). No Prefect."""
