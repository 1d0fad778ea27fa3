"""LLM Trainer (arXiv 2509.20070): one demonstration to many. An annotation names the demo's keyposes
and the object each depends on; keyposes are retargeted to a new scene with their objects; the demo
is warped between them; Thompson sampling picks the annotation that yields successes soonest."""
