"""Helpers for the MLflow for MLOps course: the data loader and the book's build machinery."""
