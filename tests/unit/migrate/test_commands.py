"""Before/after tests of each codemod command on its own (STYLE.md #11).

Each command is tested alone, so its output may refer to a fixture that no
parameter provides yet: adding parameters is FixtureParametersCommand's job,
tested at the end.  Every command has a no-op case (already parallel-safe
code stays byte for byte) and a "warns, does not touch" case.
"""

from __future__ import annotations

from libcst.codemod import CodemodTest

from parallel_isolation.migrate import (
    BrokerAddressCommand,
    ClientIdCommand,
    ContainerNameCommand,
    FixtureParametersCommand,
    IncomingTopicCommand,
    NetworkNameCommand,
    ServiceEnvPrefixCommand,
    SubscriptionWaitCommand,
    TopicNamespaceCommand,
)


class TestBrokerAddress(CodemodTest):
    TRANSFORM = BrokerAddressCommand

    def test_literals_constants_and_environments(self) -> None:
        before = """
            import paho.mqtt.client as mqtt

            # Broker settings
            BROKER_HOST = "localhost"
            BROKER_PORT = 18833
            TIMEOUT = 5


            def test_connects():
                client = mqtt.Client()
                client.connect(BROKER_HOST, BROKER_PORT, 60)  # keepalive
                client.connect("127.0.0.1", port=1883)


            def test_environment():
                env = {"MQTT_BROKER": BROKER_HOST, "MQTT_PORT": str(BROKER_PORT), "OTHER": "1"}
                docker_env = ["MQTT_BROKER=localhost", "MQTT_PORT=1883"]
                return env, docker_env
        """
        after = """
            import paho.mqtt.client as mqtt

            # Broker settings
            TIMEOUT = 5


            def test_connects():
                client = mqtt.Client()
                client.connect(mqtt_broker.host, mqtt_broker.port, 60)  # keepalive
                client.connect(mqtt_broker.host, port=mqtt_broker.port)


            def test_environment():
                env = {"MQTT_BROKER": mqtt_broker.host, "MQTT_PORT": str(mqtt_broker.port), "OTHER": "1"}
                docker_env = [f"MQTT_BROKER={mqtt_broker.host}", f"MQTT_PORT={mqtt_broker.port}"]
                return env, docker_env
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_session_fixture_and_helper_called_from_tests(self) -> None:
        before = """
            import paho.mqtt.client as mqtt
            import pytest


            def connect(client_id):
                client = mqtt.Client(client_id=client_id)
                client.connect("localhost", 1883)
                return client


            @pytest.fixture(scope="session")
            def publisher():
                return connect("publisher")


            def test_uses_helper():
                connect("probe").publish("x", b"1")
        """
        after = """
            import paho.mqtt.client as mqtt
            import pytest


            def connect(client_id):
                client = mqtt.Client(client_id=client_id)
                client.connect(mqtt_broker.host, mqtt_broker.port)
                return client


            @pytest.fixture(scope="session")
            def publisher():
                return connect("publisher")


            def test_uses_helper():
                connect("probe").publish("x", b"1")
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_on_parallel_safe_code(self) -> None:
        code = """
            import paho.mqtt.client as mqtt


            def test_connects(mqtt_broker):
                client = mqtt.Client()
                client.connect(mqtt_broker.host, mqtt_broker.port)
                env = {"MQTT_BROKER": mqtt_broker.host, "MQTT_PORT": str(mqtt_broker.port)}
                return env
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_and_keeps_module_level_connection(self) -> None:
        code = """
            import paho.mqtt.client as mqtt

            BROKER_PORT = 1883
            client = mqtt.Client()
            client.connect("localhost", BROKER_PORT)


            def test_publish():
                client.publish("a/b", b"1")
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI101 left as is: \"localhost\": module-level code runs before any fixture exists",
                "PI102 left as is: 1883: its 1 use stays; module-level code runs before any "
                "fixture exists",
            ],
        )


class TestContainerName(CodemodTest):
    TRANSFORM = ContainerNameCommand

    def test_names_references_and_scopes(self) -> None:
        before = """
            import docker
            import pytest

            BROKER_NAME = "mqtt-broker-test"


            @pytest.fixture(scope="module")
            def broker():
                client = docker.from_env()
                container = client.containers.run("eclipse-mosquitto", name=BROKER_NAME, detach=True)
                yield container
                container.remove(force=True)


            def test_service(broker):
                client = docker.from_env()
                service = client.containers.run(
                    "service",
                    name="camera-detector-test",
                    environment={"MQTT_BROKER": BROKER_NAME, "MQTT_PORT": "1883"},
                )
                assert client.containers.get("camera-detector-test").status == "running"
        """
        after = """
            import docker
            import pytest

            BROKER_NAME = "mqtt-broker-test"


            @pytest.fixture(scope="module")
            def broker():
                client = docker.from_env()
                container = client.containers.run("eclipse-mosquitto", name=isolation_worker.container_name(BROKER_NAME), detach=True)
                yield container
                container.remove(force=True)


            def test_service(broker):
                client = docker.from_env()
                service = client.containers.run(
                    "service",
                    name=parallel_test_context.container_name("camera-detector-test"),
                    environment={"MQTT_BROKER": parallel_test_context.container_name(BROKER_NAME), "MQTT_PORT": "1883"},
                )
                assert client.containers.get(parallel_test_context.container_name("camera-detector-test")).status == "running"
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_docker_command_line(self) -> None:
        before = """
            import subprocess


            def test_cli():
                subprocess.run(["docker", "run", "-d", "--name", "broker-e2e", "eclipse-mosquitto"])
                subprocess.run(["docker", "logs", "broker-e2e"])
        """
        after = """
            import subprocess


            def test_cli():
                subprocess.run(["docker", "run", "-d", "--name", parallel_test_context.container_name("broker-e2e"), "eclipse-mosquitto"])
                subprocess.run(["docker", "logs", parallel_test_context.container_name("broker-e2e")])
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop(self) -> None:
        code = """
            def test_service(docker_client, parallel_test_context):
                name = parallel_test_context.container_name("camera-detector")
                docker_client.containers.run("service", name=name, labels=parallel_test_context.labels("sut"))
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_unittest_class_reads_it_from_self(self) -> None:
        before = """
            import unittest

            import docker


            class BrokerTest(unittest.TestCase):
                def setUp(self):
                    self.container = docker.from_env().containers.run("mosquitto", name="broker-ut")
        """
        after = """
            import unittest

            import docker


            class BrokerTest(unittest.TestCase):
                def setUp(self):
                    self.container = docker.from_env().containers.run("mosquitto", name=self.parallel_test_context.container_name("broker-ut"))
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_warns_in_unittest_set_up_class(self) -> None:
        code = """
            import unittest

            import docker


            class BrokerTest(unittest.TestCase):
                @classmethod
                def setUpClass(cls):
                    cls.container = docker.from_env().containers.run("mosquitto", name="broker-ut")
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI104 left as is: \"broker-ut\": BrokerTest.setUpClass (<string>:8) runs once "
                "per class, outside any test"
            ],
        )


class TestNetworkName(CodemodTest):
    TRANSFORM = NetworkNameCommand

    def test_create_attach_and_command_line(self) -> None:
        before = """
            import subprocess

            import docker
            import pytest

            NETWORK = "wildfire-test-net"


            @pytest.fixture
            def network():
                client = docker.from_env()
                net = client.networks.create(NETWORK, driver="bridge")
                client.containers.run("svc", network=NETWORK, detach=True)
                subprocess.run(["docker", "network", "connect", "wildfire-test-net", "other"])
                yield net
                net.remove()
        """
        after = """
            import subprocess

            import docker
            import pytest

            NETWORK = "wildfire-test-net"


            @pytest.fixture
            def network():
                client = docker.from_env()
                net = client.networks.create(parallel_test_context.network_name(NETWORK), driver="bridge")
                client.containers.run("svc", network=parallel_test_context.network_name(NETWORK), detach=True)
                subprocess.run(["docker", "network", "connect", parallel_test_context.network_name("wildfire-test-net"), "other"])
                yield net
                net.remove()
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_for_builtin_networks(self) -> None:
        code = """
            def test_bridge(docker_client):
                docker_client.containers.run("svc", network="bridge")
                docker_client.networks.get("none")
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_at_module_level(self) -> None:
        code = """
            import docker

            NET = docker.from_env().networks.create("shared-net")
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI105 left as is: \"shared-net\": module-level code runs before any fixture exists"
            ],
        )


class TestClientId(CodemodTest):
    TRANSFORM = ClientIdCommand

    def test_constructor_forms_environment_and_helpers(self) -> None:
        before = """
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion


            def make_client(client_id):
                return mqtt.Client(CallbackAPIVersion.VERSION2, client_id)


            def test_ids():
                first = mqtt.Client(client_id="monitor")
                second = mqtt.Client("legacy-style-id")
                third = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "positional-id")
                fourth = make_client("made")
                random = mqtt.Client(client_id="")
                env = {"MQTT_CLIENT_ID": "gpio-trigger-test"}
        """
        after = """
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion


            def make_client(client_id):
                return mqtt.Client(CallbackAPIVersion.VERSION2, client_id)


            def test_ids():
                first = mqtt.Client(client_id=parallel_test_context.client_id("monitor"))
                second = mqtt.Client(parallel_test_context.client_id("legacy-style-id"))
                third = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, parallel_test_context.client_id("positional-id"))
                fourth = make_client(parallel_test_context.client_id("made"))
                random = mqtt.Client(client_id="")
                env = {"MQTT_CLIENT_ID": parallel_test_context.client_id("gpio-trigger-test")}
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_helper_that_also_keys_by_id_is_reported_not_rewritten(self) -> None:
        code = """
            import paho.mqtt.client as mqtt

            CLIENTS = {}


            def start(client_id):
                CLIENTS[client_id] = mqtt.Client(client_id=client_id)


            def test_start():
                start("keyed-client")
                assert "keyed-client" in CLIENTS
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI110 left as is: \"keyed-client\": start(client_id) also uses the id for "
                "something else"
            ],
        )

    def test_noop(self) -> None:
        code = """
            import paho.mqtt.client as mqtt


            def test_ids(parallel_test_context):
                client = mqtt.Client(client_id=parallel_test_context.client_id("monitor"))
        """
        self.assertCodemod(code, code, expected_warnings=[])


class TestServiceEnvPrefix(CodemodTest):
    TRANSFORM = ServiceEnvPrefixCommand

    def test_adds_prefix_after_the_broker_settings(self) -> None:
        before = """
            def test_service(mqtt_broker):
                env = {
                    "MQTT_BROKER": mqtt_broker.host,
                    "MQTT_PORT": str(mqtt_broker.port),
                    "HEALTH_INTERVAL": "1",
                }
                inline = {'MQTT_BROKER': mqtt_broker.host}
        """
        after = """
            def test_service(mqtt_broker):
                env = {
                    "MQTT_BROKER": mqtt_broker.host,
                    "MQTT_PORT": str(mqtt_broker.port),
                    "TOPIC_PREFIX": topic_namespace.prefix,
                    "HEALTH_INTERVAL": "1",
                }
                inline = {'MQTT_BROKER': mqtt_broker.host, 'TOPIC_PREFIX': topic_namespace.prefix}
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_when_prefixed(self) -> None:
        code = """
            def test_service(mqtt_broker, topic_namespace):
                env = {"MQTT_BROKER": mqtt_broker.host, "TOPIC_PREFIX": topic_namespace.prefix}
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_in_module_scoped_fixture(self) -> None:
        code = """
            import pytest


            @pytest.fixture(scope="module")
            def env(mqtt_broker):
                return {"MQTT_BROKER": mqtt_broker.host}
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI115 left as is: {\"MQTT_BROKER\": mqtt_broker.host}: the module-scoped fixture "
                "env (<string>:5) outlives each test's topic namespace"
            ],
        )


class TestTopicNamespace(CodemodTest):
    TRANSFORM = TopicNamespaceCommand

    def test_publish_subscribe_will_and_callbacks(self) -> None:
        before = """
            import paho.mqtt.client as mqtt
            import pytest

            FIRE = "fire/trigger"


            @pytest.mark.parametrize("camera", ["cam1", "cam2"])
            def test_topics(camera):
                client = mqtt.Client()
                client.will_set("system/test/lwt", b"offline", retain=True)
                client.subscribe([("system/+/health", 1), (FIRE, 1)])
                client.subscribe(("camera/#", 0))
                client.message_callback_add("frigate/+/fire", print)
                client.publish(FIRE, b"{}")
                client.publish(f"frigate/{camera}/fire", b"{}")
                client.publish("camera/" + camera, b"{}")
                for topic in ["a/b", "c/d"]:
                    client.unsubscribe(topic)
                client.subscribe("$SYS/broker/uptime")
        """
        after = """
            import paho.mqtt.client as mqtt
            import pytest

            FIRE = "fire/trigger"


            @pytest.mark.parametrize("camera", ["cam1", "cam2"])
            def test_topics(camera):
                client = mqtt.Client()
                client.will_set(topic_namespace.topic("system/test/lwt"), b"offline", retain=True)
                client.subscribe([(topic_namespace.filter("system/+/health"), 1), (topic_namespace.filter(FIRE), 1)])
                client.subscribe((topic_namespace.filter("camera/#"), 0))
                client.message_callback_add(topic_namespace.filter("frigate/+/fire"), print)
                client.publish(topic_namespace.topic(FIRE), b"{}")
                client.publish(topic_namespace.topic(f"frigate/{camera}/fire"), b"{}")
                client.publish(topic_namespace.topic("camera/" + camera), b"{}")
                for topic in ["a/b", "c/d"]:
                    client.unsubscribe(topic_namespace.filter(topic))
                client.subscribe("$SYS/broker/uptime")
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_literals_passed_to_helpers_and_helper_classes(self) -> None:
        before = """
            import paho.mqtt.client as mqtt


            class Recorder:
                def __init__(self, topics):
                    self.client = mqtt.Client()
                    for topic in topics:
                        self.client.subscribe(topic)

                def wait_for(self, topic_filter):
                    return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]


            def send(client, topic, payload):
                client.publish(topic, payload)


            def test_flow(bus):
                recorder = Recorder(["fire/trigger", "system/+/health"])
                send(mqtt.Client(), "frigate/events", b"{}")
                recorder.wait_for("fire/trigger")
        """
        after = """
            import paho.mqtt.client as mqtt


            class Recorder:
                def __init__(self, topics):
                    self.client = mqtt.Client()
                    for topic in topics:
                        self.client.subscribe(topic)

                def wait_for(self, topic_filter):
                    return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]


            def send(client, topic, payload):
                client.publish(topic, payload)


            def test_flow(bus):
                recorder = Recorder([topic_namespace.filter("fire/trigger"), topic_namespace.filter("system/+/health")])
                send(mqtt.Client(), topic_namespace.topic("frigate/events"), b"{}")
                recorder.wait_for(topic_namespace.filter("fire/trigger"))
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_for_namespaced_clients(self) -> None:
        code = """
            import paho.mqtt.client as mqtt


            def test_plugin_client(mqtt_client, parallel_test_context, topic_namespace):
                mqtt_client.subscribe("fire/trigger")
                mqtt_client.publish("frigate/events", b"{}")
                other = parallel_test_context.mqtt_client("other")
                other.publish("camera/announce/cam1", b"{}")
                raw = mqtt.Client()
                raw.publish(topic_namespace.topic("fire/trigger"), b"{}")
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_in_wide_fixture_and_module_code(self) -> None:
        code = """
            import paho.mqtt.client as mqtt
            import pytest

            client = mqtt.Client()
            client.subscribe("fire/trigger")


            @pytest.fixture(scope="session")
            def retained_config():
                client.publish("config/cameras", b"{}", retain=True)
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI107 left as is: \"fire/trigger\": module-level code runs before any fixture "
                "exists",
                "PI107 left as is: \"config/cameras\": the session-scoped fixture "
                "retained_config (<string>:9) outlives each test's topic namespace",
            ],
        )


class TestIncomingTopic(CodemodTest):
    TRANSFORM = IncomingTopicCommand

    def test_comparisons_and_parsing(self) -> None:
        # topic_matches_sub keeps the full topic: its filter is namespaced instead (PI107).
        before = """
            import paho.mqtt.client as mqtt


            def test_incoming():
                received = []

                def on_message(client, userdata, msg):
                    if msg.topic == "fire/trigger":
                        received.append(msg)
                    elif msg.topic in ("a/b", "c/d") or msg.topic.startswith("camera/"):
                        camera = msg.topic.split("/")[1]
                    if mqtt.topic_matches_sub("system/+/health", msg.topic):
                        pass

                assert received[0].topic != "fire/trigger/other"
        """
        after = """
            import paho.mqtt.client as mqtt


            def test_incoming():
                received = []

                def on_message(client, userdata, msg):
                    if topic_namespace.strip(msg.topic) == "fire/trigger":
                        received.append(msg)
                    elif topic_namespace.strip(msg.topic) in ("a/b", "c/d") or topic_namespace.strip(msg.topic).startswith("camera/"):
                        camera = topic_namespace.strip(msg.topic).split("/")[1]
                    if mqtt.topic_matches_sub("system/+/health", msg.topic):
                        pass

                assert topic_namespace.strip(received[0].topic) != "fire/trigger/other"
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_for_namespaced_messages(self) -> None:
        code = """
            def test_wait(mqtt_client):
                message = mqtt_client.wait_for("fire/trigger")
                assert message.topic == "fire/trigger"
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_noop_for_waits_in_a_paho_module(self) -> None:
        code = """
            import paho.mqtt.client as mqtt


            def test_wait(mqtt_client, wait_for_message):
                first = mqtt_client.wait_for("fire/trigger", lambda m: m.topic == "fire/trigger")
                second = wait_for_message(mqtt_client, "a/#")
                assert second.topic == "a/b"
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_for_module_level_callback(self) -> None:
        code = """
            import paho.mqtt.client as mqtt

            seen = []


            def on_message(client, userdata, msg):
                if msg.topic == "fire/trigger":
                    seen.append(msg)


            def test_callback():
                client = mqtt.Client()
                client.on_message = on_message
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI109 left as is: msg.topic: on_message is used other than by a call at "
                "<string>:13"
            ],
        )


class TestFixtureParameters(CodemodTest):
    TRANSFORM = FixtureParametersCommand

    def test_tests_fixtures_and_defaults(self) -> None:
        before = """
            import pytest


            @pytest.fixture
            def service(stack):
                return {"MQTT_BROKER": mqtt_broker.host, "TOPIC_PREFIX": topic_namespace.prefix}


            @pytest.fixture(scope="module")
            def network():
                return isolation_worker.network_name("net")


            def test_one(service, retries=3):
                assert parallel_test_context.client_id("x")


            def test_two(
                service,
                network,
            ):
                def on_message(client, userdata, msg):
                    return topic_namespace.strip(msg.topic)
        """
        after = """
            import pytest


            @pytest.fixture
            def service(stack, mqtt_broker, topic_namespace):
                return {"MQTT_BROKER": mqtt_broker.host, "TOPIC_PREFIX": topic_namespace.prefix}


            @pytest.fixture(scope="module")
            def network(isolation_worker):
                return isolation_worker.network_name("net")


            def test_one(service, retries=3, *, parallel_test_context):
                assert parallel_test_context.client_id("x")


            def test_two(
                service,
                network,
                topic_namespace,
            ):
                def on_message(client, userdata, msg):
                    return topic_namespace.strip(msg.topic)
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_threads_through_helpers_and_constructors(self) -> None:
        before = """
            import paho.mqtt.client as mqtt


            class Monitor:
                def __init__(self, client_id: str) -> None:
                    self.client = mqtt.Client(client_id=client_id)
                    self.client.connect(mqtt_broker.host, mqtt_broker.port)
                    self._subscribe()

                def _subscribe(self) -> None:
                    self.client.subscribe(topic_namespace.filter("#"))


            def announce(monitor: Monitor, camera: str) -> None:
                monitor.client.publish(topic_namespace.topic(f"camera/announce/{camera}"))


            def test_flow():
                monitor = Monitor("monitor")
                announce(monitor, "cam1")
        """
        after = """
            import paho.mqtt.client as mqtt
            from parallel_isolation import TestMQTTBroker, TopicNamespace


            class Monitor:
                def __init__(self, client_id: str, *, mqtt_broker: TestMQTTBroker, topic_namespace: TopicNamespace) -> None:
                    self.client = mqtt.Client(client_id=client_id)
                    self.client.connect(mqtt_broker.host, mqtt_broker.port)
                    self._subscribe(topic_namespace=topic_namespace)

                def _subscribe(self, *, topic_namespace: TopicNamespace) -> None:
                    self.client.subscribe(topic_namespace.filter("#"))


            def announce(monitor: Monitor, camera: str, *, topic_namespace: TopicNamespace) -> None:
                monitor.client.publish(topic_namespace.topic(f"camera/announce/{camera}"))


            def test_flow(mqtt_broker, topic_namespace):
                monitor = Monitor("monitor", mqtt_broker=mqtt_broker, topic_namespace=topic_namespace)
                announce(monitor, "cam1", topic_namespace=topic_namespace)
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_when_parameters_exist(self) -> None:
        code = """
            def helper(client, *, topic_namespace):
                client.publish(topic_namespace.topic("a"))


            def test_one(mqtt_broker, topic_namespace):
                helper(mqtt_broker, topic_namespace=topic_namespace)
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_for_callback_it_cannot_reach(self) -> None:
        code = """
            def on_message(client, userdata, msg):
                return topic_namespace.strip(msg.topic)


            def test_one(client):
                client.on_message = on_message
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "cannot pass topic_namespace into on_message: not a test, fixture or helper "
                "called only from those"
            ],
        )


class TestSubscriptionWait(CodemodTest):
    TRANSFORM = SubscriptionWaitCommand

    def test_sleeps_after_subscribe_and_connect_become_waits(self) -> None:
        before = """
            import time

            import paho.mqtt.client as mqtt


            def test_waits():
                client = mqtt.Client()
                client.connect("h", 1)
                client.loop_start()
                time.sleep(0.5)  # wait for the connection
                for topic in ["a/b", "c/d"]:
                    client.subscribe(topic, qos=1)
                time.sleep(1)
                client.publish("a/b", b"x")
        """
        after = """
            import threading

            import paho.mqtt.client as mqtt


            def test_waits():
                client = mqtt.Client()
                connected = threading.Event()
                client.on_connect = lambda *_: connected.set()
                client.connect("h", 1)
                client.loop_start()
                assert connected.wait(10), "no CONNACK from the broker"  # wait for the connection
                subscribed = threading.Event()
                client.on_subscribe = lambda *_: subscribed.set()
                client.subscribe([(topic, 1) for topic in ["a/b", "c/d"]])
                assert subscribed.wait(10), "no SUBACK for the subscription"
                client.publish("a/b", b"x")
        """
        self.assertCodemod(before, after, expected_warnings=[])

    def test_noop_without_a_sleep(self) -> None:
        code = """
            import paho.mqtt.client as mqtt


            def test_no_sleep():
                client = mqtt.Client()
                client.subscribe("a/b")
        """
        self.assertCodemod(code, code, expected_warnings=[])

    def test_warns_when_the_sleep_waits_for_what_arrives(self) -> None:
        code = """
            import time

            import paho.mqtt.client as mqtt


            def test_retained(received):
                client = mqtt.Client()
                client.subscribe("a/b")
                time.sleep(1)
                assert received
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "PI112 left as is: time.sleep(1): name the condition and wait for it (or drop "
                "the wait)"
            ],
        )
