-- One database per service (and the console's: its sessions, failed sign-ins): no service reads another's.
CREATE DATABASE intake;
CREATE DATABASE dispatch;
CREATE DATABASE enforcement;
CREATE DATABASE appraisal;
CREATE DATABASE console;
CREATE DATABASE notify;
