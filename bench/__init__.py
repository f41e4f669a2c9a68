"""raas benchmarks. Each compares ours against a peer in the same run; see bench/README.md."""
