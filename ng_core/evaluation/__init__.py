"""Judging answers (refusal judge, exact leaks, garbled text), evaluation runs, baselines, general questions, trade-off, ng report and ng sweep."""
