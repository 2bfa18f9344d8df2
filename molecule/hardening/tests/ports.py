"""Where sshd listens: converge moves it from 22 to 2222, the side effect (over SSH) to 2200;
an attempt to move it to 2300 stops with 2200 and 2300 open, and the rerun closes 2300."""
SSH_PORT = 2200
OLD_PORTS = (22, 2222, 2300)

