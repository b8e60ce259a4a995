package logfactory.opensearch;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts one real OpenSearch node in this JVM, the distribution's modules loaded as classpath
 * plugins: the node of {@code make opensearch*} and of the test fixtures (tests/opensearch_node.py).
 *
 * <p>Why a launcher: OpenSearch's own bootstrap expects the unpacked distribution (plugin
 * descriptors, a modules/ folder, the security manager). Node's protected constructor accepts
 * plugin classes directly, so the Maven Central jars alone make a node.
 *
 * <p>Usage: {@code java -cp 'opensearch-node.jar:lib/*' logfactory.opensearch.NodeMain -Ekey=value ...}
 * where {@code path.home} is required and must hold {@code config/log4j2.properties}; every other
 * argument is an ordinary OpenSearch setting. Defaults when absent: network.host=127.0.0.1 (the
 * server's own default, {@code _local_}, also binds [::1]), path.data and path.logs under path.home.
 * Prints {@value #STARTED} once the node has started; stops cleanly on SIGTERM/SIGINT.
 *
 * <p>No security plugin is loaded: the node serves plain HTTP without authentication, so it is for
 * loopback test and trial use only.
 */
public final class NodeMain {

    /** The line printed once {@code Node.start()} has returned (HTTP may still be warming up). */
    static final String STARTED = "LOGFACTORY OPENSEARCH NODE STARTED";

    /** The distribution's module plugins whose jars opensearch/pom.xml puts on the classpath. */
    private static final String[] PLUGIN_CLASSES = {
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.join.ParentJoinPlugin",
        "org.opensearch.percolator.PercolatorPlugin",
        "org.opensearch.search.aggregations.matrix.MatrixAggregationPlugin",
        "org.opensearch.index.rankeval.RankEvalPlugin",
    };

    private NodeMain() {}

    /** Node's constructor taking classpath plugins is protected: this subclass exposes it. */
    static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        final long t0 = System.nanoTime();
        Settings.Builder settings = parse(args);
        Path home = Paths.get(settings.get("path.home")).toAbsolutePath();
        settings.put("path.home", home.toString());
        putIfAbsent(settings, "path.data", home.resolve("data").toString());
        putIfAbsent(settings, "path.logs", home.resolve("logs").toString());
        putIfAbsent(settings, "network.host", "127.0.0.1");
        putIfAbsent(settings, "node.name", "node-1");

        Path config = home.resolve("config");
        if (!Files.isRegularFile(config.resolve("log4j2.properties"))) {
            throw new IllegalArgumentException(
                "missing " + config.resolve("log4j2.properties") + " (copy opensearch/log4j2.properties there)");
        }
        for (Path dir : List.of(home.resolve("modules"), home.resolve("plugins"),
                Paths.get(settings.get("path.logs")), Paths.get(settings.get("path.data")))) {
            Files.createDirectories(dir);
        }

        final String nodeName = settings.get("node.name");
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings.build(), Collections.emptyMap(), config, () -> nodeName);
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(nodeName);
        LogConfigurator.configure(env);

        final Node node = new ClasspathPluginNode(env, pluginClasses());
        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "logfactory-opensearch-shutdown"));
        node.start();
        System.out.printf("%s name=%s in %.1f s%n", STARTED, nodeName, (System.nanoTime() - t0) / 1e9);
        System.out.flush();
        closed.await();
    }

    /** {@code -Ekey=value} (or {@code key=value}) arguments into settings; path.home required. */
    private static Settings.Builder parse(String[] args) {
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            String kv = arg.startsWith("-E") ? arg.substring(2) : arg;
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected -Ekey=value, got " + arg);
            }
            settings.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        if (settings.get("path.home") == null) {
            throw new IllegalArgumentException("-Epath.home=... is required");
        }
        return settings;
    }

    /**
     * Fails fast on a missing class: without the netty4 transport, say, the node would only die
     * later with the puzzling "Unsupported transport.type []".
     */
    private static List<Class<? extends Plugin>> pluginClasses() {
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGIN_CLASSES) {
            try {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException(
                    "plugin class not on the classpath (check opensearch/pom.xml and the OpenSearch version): " + name, e);
            }
        }
        return plugins;
    }

    private static void putIfAbsent(Settings.Builder settings, String key, String value) {
        if (settings.get(key) == null) {
            settings.put(key, value);
        }
    }
}
