"""Development machinery shared by the tests and the benchmark (never imported by the service).

`devtools.mariadb` runs a private MariaDB server that a test or `make bench` may kill and restart.
"""
