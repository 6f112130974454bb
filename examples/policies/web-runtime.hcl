# The web front end receives its environment.
path "secrets/apps/web/*" {
  capabilities = ["read"]
}
