"""Pinned checksums of what ``kafka_local`` downloads for KAFKA_VERSION (and LOG4J_VERSION): data only.

``MAVEN_JARS_SHA256`` is the exact set of jars Maven's ``copy-dependencies`` puts in ``libs/`` for the POM in
``kafka_local`` (Kafka's runtime closure plus the log4j slf4j binding): a jar missing, added or with another
digest refuses to start the broker. The digests were computed from jars whose SHA-1 matched the ``.sha1``
files Maven Central publishes beside them. ``TARBALL_SHA512`` is the Apache release tarball's published
SHA-512 (the fallback without Maven), pinned so that a compromised mirror cannot also swap the ``.sha512``.

Regenerate after bumping KAFKA_VERSION or LOG4J_VERSION (docs/operations.md, "Supply chain"):
fetch once with the table emptied, check each jar against Maven Central's ``.sha1`` (``~/.m2``), then paste
``sha256sum`` of ``<cache>/kafka-<version>/libs/*.jar``.
"""

from __future__ import annotations

TARBALL_SHA512 = {
    "kafka_2.13-4.1.2.tgz": (
        "78ac6e488b1071122f9608dfdb363f6fe50e1dbbc492347002c0398dfbf77e0d8caa5bf794c5937379721004dfe92025937d238b0faf4eb715529417fd43b491"
    ),
}

MAVEN_JARS_SHA256 = {
    "argparse4j-0.7.0.jar": "65ceb669d88f63306c680f8088bbf765bbca72d288a61a03703000076c3d3f56",
    "caffeine-3.2.0.jar": "ec411dfdf0c03f25218648ce89861630b71680e5858a9a7278ebac8e55cab3d7",
    "commons-beanutils-1.11.0.jar": "9e44ba68ec9a3f21286fa2a8bbb003b735c0f69101bb43144b79f4f8aaa74709",
    "commons-collections-3.2.2.jar": "eeeae917917144a68a741d4c0dff66aa5c5c5fd85593ff217bced3fc8ca783b8",
    "commons-digester-2.1.jar": "e0b2b980a84fc6533c5ce291f1917b32c507f62bcad64198fff44368c2196a3d",
    "commons-logging-1.3.5.jar": "6d7a744e4027649fbb50895df9497d109f98c766a637062fe8d2eabbb3140ba4",
    "commons-validator-1.10.1.jar": "ed74711a78d793ca37f6075e4a1e93d107233dfd20d0bb17e32bad88d38e56aa",
    "hash4j-0.22.0.jar": "23028a3fd006e530bf495f551083208187cafd8f80624d048eba56442f16a50e",
    "HdrHistogram-2.2.2.jar": "22d1d4316c4ec13a68b559e98c8256d69071593731da96136640f864fa14fad8",
    "jackson-annotations-2.19.4.jar": "ab26383fa3c10c0df1ffd1bb035d81161c059b1af71927d73c24473c058baa16",
    "jackson-core-2.19.4.jar": "466ae4dc4f7054f51525f4211df411d9a64d65cc169995d32bf49e20e6f586e5",
    "jackson-databind-2.19.4.jar": "b781c431be870deb0bf84421e99e774c256a701f4ba678df80248f55cd16ff74",
    "jackson-dataformat-csv-2.19.4.jar": "fc06cf56909e43e0cdc84ad5e23069fcc4d503a8833bda348f47e50e8f1ac92c",
    "jackson-dataformat-yaml-2.19.4.jar": "998e652806c49ca59e2b6432c4edc37580c4702cb6189d10e6053d0b7982c2e7",
    "jackson-datatype-jdk8-2.19.4.jar": "c0e0dc3039f9a37a099b2602838f833ea8c15c56445a0eb5463d0c7e0c355da2",
    "jopt-simple-5.0.4.jar": "df26cc58f235f477db07f753ba5a3ab243ebe5789d9f89ecf68dd62ea9a66c28",
    "jose4j-0.9.6.jar": "7314af50cde9c99e8eaf43eee617a23edcc6bb43036221064355094999d837ef",
    "jspecify-1.0.0.jar": "1fad6e6be7557781e4d33729d49ae1cdc8fdda6fe477bb0cc68ce351eafdfbab",
    "kafka-clients-4.1.2.jar": "afe861c05067f4018a3148d73c1ed1e5fc90808757c15b043527d7e535a5d431",
    "kafka-coordinator-common-4.1.2.jar": "0e6697b6827fa635b4686ec9754b1c5583f4997e9bc0f33a8518f1dee518a454",
    "kafka-group-coordinator-4.1.2.jar": "1925a002ef7c527b72a0877ed0d9f3a5f88a08d130d1ed2bdfcc40457ded354b",
    "kafka-group-coordinator-api-4.1.2.jar": "781f932fb3e3824420e7554ef745b57e1827dd801cfc71bf8fd31eef56e60638",
    "kafka-metadata-4.1.2.jar": "ccc29f5423cf5fbe63b47871dbce00a16e05a38bd0d531b3bf21e5c71ba54fac",
    "kafka-raft-4.1.2.jar": "01f6717d07472b577a1cfe1cdf4d098b14a1dae4e35574164712801bd2a55cce",
    "kafka-server-4.1.2.jar": "2b849f1c9d3d9a08a5ea4c2f0479c552592cd770d72263d8d1610701a9b3e8d4",
    "kafka-server-common-4.1.2.jar": "0f1d8fb9478ca0e3eea23b81064749738b9bff705704067e2fe8d62047e5fc07",
    "kafka-share-coordinator-4.1.2.jar": "fffacfaa46e7f25696f673035f86669422ae81889dfd28d8fec29500ee888310",
    "kafka-storage-4.1.2.jar": "902a08f775a9957e1546ecec8e22fbda73b84be9dfbdf04cce7a023dd60bf8b9",
    "kafka-storage-api-4.1.2.jar": "79910cc7d0e3d3a9d9ce6f30f6f000cd355321f604a0f6c73c948389d1b41457",
    "kafka-tools-api-4.1.2.jar": "6d4d6a33b0dcd2180e7489c58c0089f8fb502e7a095cdd46f57755df462f00ae",
    "kafka-transaction-coordinator-4.1.2.jar": "20939d46e1e65a34d6a59b447f0a5e63721678abbfdc948a5f9422930d71612c",
    "kafka_2.13-4.1.2.jar": "965af2d9c19be0c169110eb18468a0bee24e24d14071a57c7f8a57bc4d3f990e",
    "log4j-api-2.25.3.jar": "e886682920fa0fb9d6eb6395dcb4de088443f8646c89c5e5846e168e327f406f",
    "log4j-core-2.25.3.jar": "362b7fcb65b73aa46cc4bc53abf4eb216f444a83b5d1a037cb6fdfff0ae9f0f9",
    "log4j-slf4j-impl-2.25.3.jar": "f835ac2bf1a895d5e687b4ebf238bff05316dd672e572dff235024b6e320bcc9",
    "lz4-java-1.10.1.jar": "a58a84c4271e50df4c96ed916ccb7e48a869f8ed9cdcda1ad5d3d4c33b0214a3",
    "metrics-core-2.2.0.jar": "6b7a14a6f34c10f8683f7b5e2f39df0f07b58c7dff0e468ebbc713905c46979c",
    "pcollections-4.0.2.jar": "2bbeef5797a241300c4f7513cd546239629ed7deda4fc0c31df90bb95f5f13ef",
    "re2j-1.8.jar": "7b52c72156dd7f98b3237a5b35c1d34fba381b21048c89208913ad80a45dfbd7",
    "scala-library-2.13.16.jar": "1ebb2b6f9e4eb4022497c19b1e1e825019c08514f962aaac197145f88ed730f1",
    "scala-logging_2.13-3.9.5.jar": "87a3017d3f43e6ace7566fe4c3d615134c6914ff871c8d64bb32ca1d996d0545",
    "scala-reflect-2.13.16.jar": "fb49ccd9cac7464486ab993cda20a3c1569d8ef26f052e897577ad2a4970fb1d",
    "slf4j-api-1.7.36.jar": "d3ef575e3e4979678dc01bf1dcce51021493b4d11fb7f1be8ad982877c16a1c0",
    "snakeyaml-2.4.jar": "ef779af5d29a9dde8cc70ce0341f5c6f7735e23edff9685ceaa9d35359b7bb7f",
    "snappy-java-1.1.10.7.jar": "4c766cb3f855415ee734b2392949a0b6f12a60879334a74518deaf6270d32e36",
    "zstd-jni-1.5.6-10.jar": "b6c3237e24b8252a5a9c3a0e1ae30ef8f323412e74bd358548b7a9e527d676df",
}
