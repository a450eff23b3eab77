package io.peft4j.cli;

import io.peft4j.runtime.PeftException;
import picocli.CommandLine;
import java.io.PrintWriter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * The {@code peft4j} command line: {@code peft4j inspect <dir>}, {@code peft4j diff <dirA> <dirB>},
 * {@code peft4j merge <base.safetensors> <adapter dir> <out.safetensors>}. It needs no ND4J backend.
 * A broken adapter ends the command with exit status 1 and a message naming the file and the problem.
 */
@Command(name = "peft4j", mixinStandardHelpOptions = true, version = "peft4j 0.1.0",
        description = "Inspect, compare and merge adapters saved in Hugging Face PEFT's format (LoRA, prompt and prefix tuning, bottleneck adapters).",
        subcommands = {InspectCommand.class, DiffCommand.class, MergeCommand.class})
public final class Peft4jCli implements Runnable {

    @Spec
    CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** Runs the command line, printing to {@code out} and {@code err}, and returns its exit status. */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine commandLine = new CommandLine(new Peft4jCli()).setOut(out).setErr(err);
        commandLine.setExecutionExceptionHandler((exception, line, parseResult) -> {
            if (exception instanceof PeftException) {
                line.getErr().println("peft4j: " + exception.getMessage());
                return 1;
            }
            throw exception;
        });
        return commandLine.execute(args);
    }

    /** Without a subcommand: the usage. */
    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
