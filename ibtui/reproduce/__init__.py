"""`ibtui reproduce`: the papers' claims, each judged from its own runs at two scales (claims/, one module each)."""
