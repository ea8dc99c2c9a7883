// deepvariants train | evaluate | predict | sweep | inspect | export: see CommandLine.
return Microsoft.ML.DeepVariants.Cli.CommandLine.Run(args);
