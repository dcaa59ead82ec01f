"""The local Spark JVM's options: the class archive is used only when it is there, whole."""

from pathlib import Path

from mlops_dagster.resources.spark_jvm import _C2_LATER, LOG_CONFIG, build_class_archive, class_archive, java_options


def test_without_an_archive_spark_starts_the_usual_way(tmp_path: Path):
    options = java_options(tmp_path / "missing.jsa")
    assert options.split() == [f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}", "-XX:+UseParallelGC", *_C2_LATER]
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
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    for option in _C2_LATER:
        name, value = option.removeprefix("-XX:").split("=")
        assert diagnostics.getVMOption(name).getValue() == value
