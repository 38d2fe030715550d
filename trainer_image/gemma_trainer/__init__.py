"""The Gemma 2 fine-tuning trainer that runs inside the operator's Jobs (no Kubernetes imports here)."""
