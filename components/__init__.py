"""Thin KFP components: each moves data between artifacts and one library call."""
