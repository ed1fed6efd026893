"""Development machinery shared by the tests and the benchmark (never imported by the service).

`devtools.mariadb` runs a private MariaDB server that a test or `make bench` may kill and restart;
`devtools.galera` runs a private three-node MariaDB Galera cluster on loopback.
"""
