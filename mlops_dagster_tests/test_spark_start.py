"""The local Spark JVM's options: the class archive is used only when it is there, whole."""

from pathlib import Path

from mlops_dagster.resources.spark_jvm import (
    _C2_LATER,
    LOG_CONFIG,
    build_class_archive,
    class_archive,
    java_options,
)


def test_without_an_archive_spark_starts_the_usual_way(tmp_path: Path):
    options = java_options(tmp_path / "missing.jsa")
    assert options.split() == [
        f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}",
        "-XX:+UseParallelGC",
        *_C2_LATER,
    ]
    assert "SharedArchiveFile" not in options


def test_with_an_archive_the_jvm_maps_it_quietly(tmp_path: Path):
    archive = tmp_path / "classes.jsa"
    archive.write_bytes(b"\0")
    options = java_options(archive).split()
    assert f"-XX:SharedArchiveFile={archive}" in options
    assert "-Xlog:cds=off" in options


def test_the_virtualenv_archive_is_named_for_its_pyspark_and_never_rebuilt_in_place():
    from importlib.metadata import version

    assert class_archive().name == f"spark-{version('pyspark')}-classes.jsa"
    if class_archive().is_file():  # make install built it: a second build leaves it as it is
        before = class_archive().stat().st_mtime_ns
        said: list[str] = []
        assert build_class_archive(log=said.append) == class_archive()
        assert class_archive().stat().st_mtime_ns == before
        assert said and "already built" in said[0]


def test_a_local_session_collects_garbage_with_the_parallel_collector(spark):
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert {bean.getName() for bean in beans} == {"PS Scavenge", "PS MarkSweep"}


def test_a_local_session_hands_code_to_the_optimizing_compiler_later(spark):
    """The thresholds reach the JVM Spark runs in (a misspelt -XX option would stop it starting; an
    option Spark dropped would leave HotSpot's defaults)."""
    jvm = spark.sparkContext._jvm
    diagnostics = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    for option in _C2_LATER:
        name, value = option.removeprefix("-XX:").split("=")
        assert diagnostics.getVMOption(name).getValue() == value


def _modules_seen(batches, module="wave"):
    import os
    import sys

    import pyarrow as pa

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "imported": [module in sys.modules]})


def test_idle_python_workers_import_modules_in_the_background_on_local_spark(spark):
    """Every Python worker a later job gets (Spark hands idle ones out first in first out) has the
    modules; on a cluster's config nothing runs."""
    import yaml

    from mlops_dagster.resources.spark import SparkResource
    from mlops_dagster.settings import CONF_DIR

    config = yaml.safe_load((CONF_DIR / "local.yaml").read_text())["spark"]
    tasks = 2 * spark.sparkContext.defaultParallelism
    before = spark.range(0, tasks, 1, tasks).mapInArrow(_modules_seen, "pid long, imported boolean").collect()
    assert not any(row.imported for row in before)  # `wave`: a module nothing of ours imports
    thread = SparkResource(spark_config=config).import_in_python_workers(("wave",))
    thread.join(timeout=120)
    assert not thread.is_alive()
    after = spark.range(0, tasks, 1, tasks).mapInArrow(_modules_seen, "pid long, imported boolean").collect()
    assert after and all(row.imported for row in after), after
    assert (
        SparkResource(spark_config={"spark.master": "spark://cluster:7077"}).import_in_python_workers(
            ("wave",)
        )
        is None
    )


def test_on_a_cluster_the_package_shipped_to_executors_is_removed_when_the_process_ends(tmp_path: Path):
    """On a Databricks cluster the session ships this package to the executors (a zip in a temporary
    folder); the folder lasts as long as the process, not longer: an all-purpose cluster's driver
    runs one step's process after another."""
    import os
    import subprocess
    import sys

    script = (
        "import glob, tempfile\n"
        "from mlops_dagster.resources.spark import SparkResource\n"
        "spark = SparkResource(spark_config={'spark.master': 'local[1]', 'spark.ui.enabled': 'false'}).session()\n"
        "print(len(glob.glob(tempfile.gettempdir() + '/mlops-dagster-pyfiles-*/mlops_dagster.zip')))\n"
        "spark.stop()\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "DATABRICKS_RUNTIME_VERSION": "15.4"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "1"  # shipped while the process ran
    assert not list(tmp_path.glob("mlops-dagster-pyfiles-*"))  # and gone with it
