package io.peft4j.agent;

import io.peft4j.runtime.bridge.ForwardDispatcher;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.implementation.bytecode.assign.Assigner;

/**
 * Inlined on entry to a layer's forward method (the runtime may replace its first argument, as an
 * (IA)³ input vector does) and at every normal exit (hands the layer, its input and its output to the
 * runtime and returns what the runtime returns). Static and stateless; an exception thrown by the
 * forward method passes through untouched.
 */
final class ForwardAdvice {

    private ForwardAdvice() {
    }

    @Advice.OnMethodEnter
    static void beforeForward(@Advice.This Object layer,
                              @Advice.Argument(value = 0, readOnly = false, typing = Assigner.Typing.DYNAMIC) Object input) {
        input = ForwardDispatcher.beforeForward(layer, input);
    }

    @Advice.OnMethodExit
    static void afterForward(@Advice.This Object layer,
                             @Advice.Argument(value = 0, typing = Assigner.Typing.DYNAMIC) Object input,
                             @Advice.Return(readOnly = false, typing = Assigner.Typing.DYNAMIC) Object output) {
        output = ForwardDispatcher.afterForward(layer, input, output);
    }
}
