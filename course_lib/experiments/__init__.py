"""Experiments of the chapters (data, training and evaluation recipes shared by notebooks and benchmarks)."""
