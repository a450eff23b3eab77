package io.peft4j.agent;

import io.peft4j.runtime.bridge.ForwardDispatcher;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.implementation.bytecode.assign.Assigner;

/**
 * Inlined at every normal exit of a layer's forward method: hands the layer, its input and its
 * output to the runtime and returns what the runtime returns. Static and stateless; an exception
 * thrown by the forward method passes through untouched.
 */
final class ForwardAdvice {

    private ForwardAdvice() {
    }

    @Advice.OnMethodExit
    static void afterForward(@Advice.This Object layer,
                             @Advice.Argument(value = 0, typing = Assigner.Typing.DYNAMIC) Object input,
                             @Advice.Return(readOnly = false, typing = Assigner.Typing.DYNAMIC) Object output) {
        output = ForwardDispatcher.afterForward(layer, input, output);
    }
}
