"""In-process emulators (Kubernetes API, GitLab REST v4, GCP) for tests and `konfig sandbox`."""
