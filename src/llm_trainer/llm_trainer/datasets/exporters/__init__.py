"""Exporters: episodes in, a format the users' own trainers load out (robomimic, LeRobot, SFT JSONL)."""

FORMATS = ("robomimic", "lerobot", "sft-jsonl")
