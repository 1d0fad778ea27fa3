"""BLAZER's second half: fine-tune a smaller planner (LoRA) on simulator-verified plans, then
preference-train it on the failures (DPO), and hand the adapter to the planner backends."""
