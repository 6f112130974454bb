# Platform administrators change any secret and approve governed changes.
path "secrets/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "sys/*" {
  capabilities = ["read", "update", "sudo"]
}
