"""Prompt sets shipped as data (YAML). Installed as ``zsad.prompts``; edit the YAML, not code, to change prompts."""
