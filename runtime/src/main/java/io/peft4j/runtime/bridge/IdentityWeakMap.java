package io.peft4j.runtime.bridge;

import java.lang.ref.Cleaner;
import java.lang.ref.WeakReference;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A concurrent map from objects, compared by identity and held weakly, to values.
 *
 * <p>Layer classes are the user's: they may override {@code equals}, and a model that is dropped
 * must not be kept alive by peft4j's bookkeeping, so neither {@code WeakHashMap} nor
 * {@code IdentityHashMap} fits. Values must not refer to their keys strongly.
 *
 * <p>An entry goes as soon as its key is collected, from a {@link Cleaner}'s thread, not at the next
 * write: values hold a model's graph and, through it, its weights in native memory, which would
 * otherwise stay allocated until some other model happened to attach.
 */
final class IdentityWeakMap<K, V> {

    private static final Cleaner CLEANER = Cleaner.create();

    private final ConcurrentHashMap<Key, V> entries = new ConcurrentHashMap<>();

    V get(K key) {
        return entries.get(new Key(key));
    }

    void put(K key, V value) {
        Key weak = new Key(key);
        if (entries.put(weak, value) == null) {
            // The first key object for this referent stays in the map until removed; only it needs a cleaner.
            CLEANER.register(key, () -> entries.remove(weak));
        }
    }

    V remove(K key) {
        return entries.remove(new Key(key));
    }

    int size() {
        return entries.size();
    }

    private static final class Key extends WeakReference<Object> {
        private final int hash;

        Key(Object referent) {
            super(referent);
            this.hash = System.identityHashCode(referent);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public boolean equals(Object other) {
            if (this == other) {
                return true;
            }
            if (!(other instanceof Key key)) {
                return false;
            }
            Object mine = get();
            return mine != null && mine == key.get();
        }
    }
}
