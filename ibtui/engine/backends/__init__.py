"""Training back ends: how one family of models gets its gradients and its snapshot pass."""
