"""Serving models with llama-server: desired state (services), the node's reconciler (engine), the API."""
