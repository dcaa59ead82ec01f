"""Synthetic datasets: the telco churn generator behind the shipped default."""
