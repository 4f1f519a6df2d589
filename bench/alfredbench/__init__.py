"""alfred benchmark (bench/run-bench): ours vs Debian alfred in namespace meshes."""
