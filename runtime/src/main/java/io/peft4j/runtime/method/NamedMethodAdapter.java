package io.peft4j.runtime.method;

/** What every method's part of a named adapter knows about itself: its method and the adapter it belongs to. */
public abstract class NamedMethodAdapter implements MethodAdapter {

    private final PeftMethod method;
    private final String adapterName;

    protected NamedMethodAdapter(PeftMethod method, String adapterName) {
        this.method = method;
        this.adapterName = adapterName;
    }

    @Override
    public final PeftMethod method() {
        return method;
    }

    @Override
    public final String adapterName() {
        return adapterName;
    }
}
