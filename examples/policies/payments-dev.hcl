# Developers of the payments team may set the payments secrets, never read them back.
path "secrets/apps/payments/*" {
  capabilities = ["create", "update"]
}
