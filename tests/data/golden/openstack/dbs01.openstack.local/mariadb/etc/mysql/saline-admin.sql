-- Managed by saline (formula mariadb): mariadbd runs this at every start (init-file in
-- 99-saline.cnf), before it accepts connections. The administrator mysql:server:admin,
-- from any address with its password: the bootstrap tasks log in as it over TCP (on
-- Kubernetes they run in pods of their own). root@localhost keeps unix_socket login
-- (the health check and the API check, inside the server's container).
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY 'example-mysql-admin';
ALTER USER 'root'@'%' IDENTIFIED BY 'example-mysql-admin';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
