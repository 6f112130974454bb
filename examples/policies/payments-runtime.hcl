# The payments service receives its own secrets, nothing else.
path "secrets/apps/payments/+" {
  capabilities = ["read"]
}
