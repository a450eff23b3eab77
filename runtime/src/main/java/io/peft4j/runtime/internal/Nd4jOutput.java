package io.peft4j.runtime.internal;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Supplier;

/**
 * Keeps ND4J's standard-output chatter out of the user's output while SameDiff builds gradients:
 * ND4J 1.0.0-M2.1 prints "Added differentiated op …" with {@code System.out.println} for every op it
 * differentiates. Lines that start otherwise pass through unchanged. {@code -Dpeft4j.verbose=true}
 * lets everything through.
 *
 * <p>Standard output is one per JVM, so the filter is installed by the first caller and removed by the
 * last; callers in other threads run at the same time (a lock held for the whole action would serialize
 * every training loop in the JVM, e.g. two Spark tasks).
 */
public final class Nd4jOutput {

    /** Set to {@code true} to see ND4J's own output. */
    public static final String VERBOSE_PROPERTY = "peft4j.verbose";

    private static final String NOISE = "Added differentiated op ";
    private static final Object LOCK = new Object();
    private static int users;
    private static PrintStream original;

    private Nd4jOutput() {
    }

    /** Runs {@code action} with ND4J's gradient chatter dropped from standard output. */
    public static <T> T quiet(Supplier<T> action) {
        if (Boolean.getBoolean(VERBOSE_PROPERTY)) {
            return action.get();
        }
        synchronized (LOCK) {
            if (users++ == 0) {
                original = System.out;
                System.setOut(new Filter(original));
            }
        }
        try {
            return action.get();
        } finally {
            synchronized (LOCK) {
                if (--users == 0) {
                    System.out.flush();
                    System.setOut(original);
                    original = null;
                }
            }
        }
    }

    /** A stream that forwards whole lines, except ND4J's noise. */
    private static final class Filter extends PrintStream {
        Filter(PrintStream target) {
            super(new LineFilter(target), true, StandardCharsets.UTF_8);
        }
    }

    private static final class LineFilter extends OutputStream {
        private final PrintStream target;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();

        LineFilter(PrintStream target) {
            this.target = target;
        }

        @Override
        public synchronized void write(int b) {
            line.write(b);
            if (b == '\n') {
                emit();
            }
        }

        @Override
        public synchronized void flush() {
            if (line.size() > 0 && !line.toString(StandardCharsets.UTF_8).startsWith(NOISE.substring(0, Math.min(NOISE.length(), line.size())))) {
                emit();
            }
            target.flush();
        }

        private void emit() {
            String text = line.toString(StandardCharsets.UTF_8);
            line.reset();
            if (!text.startsWith(NOISE)) {
                target.print(text);
            }
        }
    }
}
