// Names from the DMTF OVF 1.0 envelope and CIM schemas that every OVF
// descriptor uniso writes uses (vm/<name>.ovf and the OpenNode descriptor):
// XML namespaces, CIM_ResourceAllocationSettingData resource types, and the
// CIM operating system id.

export const NS_OVF = 'http://schemas.dmtf.org/ovf/envelope/1';
export const NS_RASD = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData';
export const NS_VSSD = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData';
export const NS_XSI = 'http://www.w3.org/2001/XMLSchema-instance';

/** rasd:ResourceType values */
export const RT_CPU = 3;
export const RT_MEMORY = 4;
export const RT_SCSI = 6;
export const RT_ETHERNET = 10;
export const RT_DISK = 17;

/** OperatingSystemSection ovf:id: CIM "Debian 64-Bit" */
export const OS_DEBIAN_64 = 96;
