"""Preset files (YAML), shipped in the wheel as ``zsad.preset_files``; read them with ``zsad.presets``."""
