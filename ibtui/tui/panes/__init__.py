"""The app's panes, one a file: information plane, dynamics, clustering, Gaussian bound, loss, status."""
