"""llm_trainer: LLM plans and a few human demos -> verified robot demonstration datasets."""

__version__ = "0.1.0"
