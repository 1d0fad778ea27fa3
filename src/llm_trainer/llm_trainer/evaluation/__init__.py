"""Evaluation the way BLAZER reports it: success per task on held-out test seeds (Table I), and the
data-scale ablation (Fig. 7 left)."""
