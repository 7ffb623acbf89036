create database mlflow;
create database mlflow_auth;
