// The distributed-sweep tests spend their time waiting on worker processes whose epochs are sleeps, so two of them run
// at once. Every other class trains in this process (TorchSharp's thread count is one setting for the process, and the
// trainings use every core) and runs alone.
[assembly: Parallelize(Workers = 2, Scope = ExecutionScope.MethodLevel)]
