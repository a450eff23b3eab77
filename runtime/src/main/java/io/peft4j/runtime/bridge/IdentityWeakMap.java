package io.peft4j.runtime.bridge;

import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A concurrent map from objects, compared by identity and held weakly, to values.
 *
 * <p>Layer classes are the user's: they may override {@code equals}, and a model that is dropped
 * must not be kept alive by peft4j's bookkeeping, so neither {@code WeakHashMap} nor
 * {@code IdentityHashMap} fits. Values must not refer to their keys strongly.
 */
final class IdentityWeakMap<K, V> {

    private final ConcurrentHashMap<Key, V> entries = new ConcurrentHashMap<>();
    private final ReferenceQueue<Object> collected = new ReferenceQueue<>();

    V get(K key) {
        return entries.get(new Key(key, null));
    }

    void put(K key, V value) {
        purge();
        entries.put(new Key(key, collected), value);
    }

    V remove(K key) {
        purge();
        return entries.remove(new Key(key, null));
    }

    int size() {
        purge();
        return entries.size();
    }

    private void purge() {
        for (Object gone; (gone = collected.poll()) != null; ) {
            entries.remove(gone);
        }
    }

    private static final class Key extends WeakReference<Object> {
        private final int hash;

        Key(Object referent, ReferenceQueue<Object> queue) {
            super(referent, queue);
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
