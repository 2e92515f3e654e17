"""Services: one small module per seed service (mpush, lpush, mbalance, vpush), each a
`redline.runtime.Service` assembled by `redline.runtime.assemble` and run by
`redline.runtime.run_service`; `forward` and `pending` are what the forwarders share."""
