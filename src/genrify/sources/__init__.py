"""Where tracks come from: labelled folders and manifests, a local music library,
remote preview providers (Deezer, iTunes) and the synthetic demo corpus."""
